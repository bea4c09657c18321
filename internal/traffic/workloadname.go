package traffic

import (
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// cronJobName is a Job name a CronJob made: its name and a timestamp of 8 to 10 digits.
var cronJobName = regexp.MustCompile(`^(.+)-\d{8,10}$`)

// WorkloadName is the workload name Istio's metrics give a pod's traffic (source_workload,
// destination_workload): the label service.istio.io/workload-name when set, else what Istio's
// injector derives from the pod's controller (istio/istio pkg/kube/util.go GetDeployMetaFromPod and
// GetWorkloadMetaFromPod): a Deployment's or an Argo Rollout's name for a ReplicaSet's pod, an
// OpenShift DeploymentConfig's, a CronJob's for its Job's, the controller's name otherwise, the
// pod's own without one.
func WorkloadName(pod *corev1.Pod) string {
	if name, ok := pod.Labels["service.istio.io/workload-name"]; ok {
		return name
	}
	if pod.GenerateName == "" {
		return pod.Name
	}
	for _, ref := range pod.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		switch hash, rollout := pod.Labels["pod-template-hash"], pod.Labels["rollouts-pod-template-hash"]; {
		case ref.Kind == "ReplicaSet" && hash != "" && strings.HasSuffix(ref.Name, hash):
			return strings.TrimSuffix(ref.Name, "-"+hash)
		case ref.Kind == "ReplicaSet" && rollout != "" && strings.HasSuffix(ref.Name, rollout):
			return strings.TrimSuffix(ref.Name, "-"+rollout)
		case ref.Kind == "ReplicationController" && pod.Labels["deploymentconfig"] != "":
			return pod.Labels["deploymentconfig"]
		case ref.Kind == "Job":
			if m := cronJobName.FindStringSubmatch(ref.Name); m != nil {
				return m[1]
			}
		}
		if ref.Name != "" {
			return ref.Name
		}
		break
	}
	return pod.Name
}
