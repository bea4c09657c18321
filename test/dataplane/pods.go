package dataplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Port is a port a pod listens on.
type Port struct {
	Number   int32
	Protocol corev1.Protocol
	// Name, when set, is the container port's name (NetworkPolicies may refer to it).
	Name string
}

func (p Port) String() string { return fmt.Sprintf("%d/%s", p.Number, p.Protocol) }

// Pod is a pod of a scenario: a Pod object with the status a kubelet would report, and a network
// namespace where a listener answers on each of its ports.
type Pod struct {
	Namespace, Name string
	Labels          map[string]string
	ServiceAccount  string
	Ports           []Port
	// Slot is the network namespace the pod was given.
	Slot Slot
	// Outside makes it a host outside the cluster (a load balancer, a managed database): a network
	// namespace with listeners and no Pod object, so policies can only match it by address.
	Outside bool
}

// Key is "namespace/name".
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

// sidecarAnnotation marks a pod as injected by Istio, so the operator's STRICT mTLS preflight
// sees the scenario's pods as meshed: this suite tests the NetworkPolicy layer, and no sidecar
// runs here.
const sidecarAnnotation = "sidecar.istio.io/status"

// podSet hands out slots and runs the listeners.
type podSet struct {
	c     *Cluster
	mu    sync.Mutex
	used  map[string]*Pod // by slot network namespace
	close map[string][]io.Closer
}

func newPodSet(c *Cluster) *podSet {
	return &podSet{c: c, used: map[string]*Pod{}, close: map[string][]io.Closer{}}
}

// AddPods creates the pods (and their namespaces) in free slots, marks them Running with their
// slot's address, and starts their listeners. It fills in each pod's Slot.
func (c *Cluster) AddPods(ctx context.Context, pods ...*Pod) error {
	for _, p := range pods {
		if err := c.pods.take(p); err != nil {
			return err
		}
		if err := c.createPod(ctx, p); err != nil {
			return err
		}
		if err := c.pods.listen(p); err != nil {
			return err
		}
	}
	return nil
}

// RemovePods deletes the pods and frees their slots.
func (c *Cluster) RemovePods(ctx context.Context, pods ...*Pod) error {
	var errs []error
	for _, p := range pods {
		if !p.Outside {
			obj := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name}}
			if err := c.Client.Delete(ctx, obj, client.GracePeriodSeconds(0)); client.IgnoreNotFound(err) != nil {
				errs = append(errs, err)
			}
		}
		c.pods.release(p)
	}
	return errors.Join(errs...)
}

func (c *Cluster) createPod(ctx context.Context, p *Pod) error {
	if p.Outside {
		return nil
	}
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: p.Namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	var ports []corev1.ContainerPort
	for _, port := range p.Ports {
		ports = append(ports, corev1.ContainerPort{Name: port.Name, ContainerPort: port.Number, Protocol: port.Protocol})
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels,
			Annotations: map[string]string{sidecarAnnotation: "{}"}},
		Spec: corev1.PodSpec{
			NodeName:                     NodeName,
			ServiceAccountName:           p.ServiceAccount,
			AutomountServiceAccountToken: new(false),
			Containers:                   []corev1.Container{{Name: "app", Image: "listener", Ports: ports}},
		},
	}
	if err := c.Client.Create(ctx, pod); err != nil {
		return fmt.Errorf("creating pod %s: %w", p.Key(), err)
	}
	// No kubelet runs here: report the status one would, which is what the enforcer matches on.
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, HostIP: p.Slot.Gateway,
		PodIP: p.Slot.IP, PodIPs: []corev1.PodIP{{IP: p.Slot.IP}}}
	if err := c.Client.Status().Update(ctx, pod); err != nil {
		return fmt.Errorf("reporting pod %s running: %w", p.Key(), err)
	}
	return nil
}

func (s *podSet) take(p *Pod) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, slot := range s.c.Topology.Slots {
		if s.used[slot.Netns] == nil {
			s.used[slot.Netns] = p
			p.Slot = slot
			return nil
		}
	}
	return fmt.Errorf("no free pod slot for %s: the harness prepares %d", p.Key(), SlotCount)
}

func (s *podSet) release(p *Pod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.close[p.Slot.Netns] {
		_ = c.Close()
	}
	delete(s.close, p.Slot.Netns)
	delete(s.used, p.Slot.Netns)
}

func (s *podSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ns, closers := range s.close {
		for _, c := range closers {
			_ = c.Close()
		}
		delete(s.close, ns)
	}
}

// listen starts a listener on each of the pod's ports inside its network namespace: TCP answers
// each connection with a greeting, UDP echoes each datagram.
func (s *podSet) listen(p *Pod) error {
	for _, port := range p.Ports {
		addr := net.JoinHostPort(p.Slot.IP, strconv.Itoa(int(port.Number)))
		var closer io.Closer
		err := InNetns(p.Slot.Netns, func() error {
			if port.Protocol == corev1.ProtocolUDP {
				conn, err := net.ListenPacket("udp4", addr)
				if err == nil {
					closer = conn
					go echo(conn)
				}
				return err
			}
			l, err := net.Listen("tcp4", addr)
			if err == nil {
				closer = l
				go greet(l)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("listening on %s for %s: %w", addr, p.Key(), err)
		}
		s.mu.Lock()
		s.close[p.Slot.Netns] = append(s.close[p.Slot.Netns], closer)
		s.mu.Unlock()
	}
	return nil
}

const greeting = "ok\n"

func greet(l net.Listener) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		_, _ = conn.Write([]byte(greeting))
		_ = conn.Close()
	}
}

func echo(conn net.PacketConn) {
	buf := make([]byte, 512)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = conn.WriteTo(buf[:n], from)
	}
}

// Dial opens a new connection from a pod's network namespace and tells whether the other end
// answered within the timeout: a TCP greeting, or a UDP echo. A fresh socket every time, so no
// established connection the enforcer would let through is reused.
func Dial(from Slot, toIP string, port Port, timeout time.Duration) bool {
	addr := net.JoinHostPort(toIP, strconv.Itoa(int(port.Number)))
	network := "tcp4"
	if port.Protocol == corev1.ProtocolUDP {
		network = "udp4"
	}
	var conn net.Conn
	err := InNetns(from.Netns, func() (err error) {
		conn, err = (&net.Dialer{Timeout: timeout}).Dial(network, addr)
		return err
	})
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if network == "udp4" {
		if _, err := conn.Write([]byte("ping")); err != nil {
			return false
		}
	}
	buf := make([]byte, len(greeting))
	n, _ := io.ReadAtLeast(conn, buf, 1)
	return n > 0
}

// InNetns runs fn on an OS thread of its own that has joined the named network namespace:
// sockets fn creates live there, and keep doing so after it returns. The thread is thrown away if
// it cannot return to the original namespace.
func InNetns(name string, fn func() error) error {
	result := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		back, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			result <- err
			return
		}
		defer back.Close()
		target, err := os.Open("/run/netns/" + name)
		if err != nil {
			result <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			result <- fmt.Errorf("joining network namespace %s: %w", name, err)
			return
		}
		err = fn()
		if unix.Setns(int(back.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread() // else the goroutine ends locked and the thread dies with it
		}
		result <- err
	}()
	return <-result
}
