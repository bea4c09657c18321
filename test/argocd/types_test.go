package argocd

// What the e2e suite reads of Argo CD: the fields of its Applications (through kubectl, as JSON,
// so the operator's module does not import Argo CD), its resource tree, and a minimal Redis client.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

type health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type resourceStatus struct {
	Group           string  `json:"group"`
	Version         string  `json:"version"`
	Kind            string  `json:"kind"`
	Namespace       string  `json:"namespace"`
	Name            string  `json:"name"`
	Status          string  `json:"status"`
	Health          *health `json:"health"`
	RequiresPruning bool    `json:"requiresPruning"`
}

type application struct {
	Metadata struct {
		Name        string            `json:"name"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Source struct {
			TargetRevision string `json:"targetRevision"`
			Path           string `json:"path"`
		} `json:"source"`
	} `json:"spec"`
	Status struct {
		Sync struct {
			Status   string `json:"status"`
			Revision string `json:"revision"`
		} `json:"sync"`
		Health         health           `json:"health"`
		Resources      []resourceStatus `json:"resources"`
		OperationState *struct {
			Phase      string `json:"phase"`
			Message    string `json:"message"`
			StartedAt  string `json:"startedAt"`
			FinishedAt string `json:"finishedAt"`
			SyncResult *struct {
				Revision string `json:"revision"`
			} `json:"syncResult"`
		} `json:"operationState"`
		History []struct {
			ID       int64  `json:"id"`
			Revision string `json:"revision"`
		} `json:"history"`
		Conditions []struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"conditions"`
		ReconciledAt string `json:"reconciledAt"`
	} `json:"status"`
}

// resource is the status Argo CD keeps of one of the Application's own resources.
func (a *application) resource(kind, namespace, name string) *resourceStatus {
	for i, r := range a.Status.Resources {
		if r.Kind == kind && r.Namespace == namespace && r.Name == name {
			return &a.Status.Resources[i]
		}
	}
	return nil
}

// operationStarted identifies the last sync operation (automated, self-heal or manual alike:
// self-heal syncs are not recorded in status.history).
func (a *application) operationStarted() string {
	if a.Status.OperationState == nil {
		return ""
	}
	return a.Status.OperationState.StartedAt
}

// summary is one line of what the Application reports, for failure messages.
func (a *application) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: sync=%s@%.8s health=%s", a.Metadata.Name, a.Status.Sync.Status, a.Status.Sync.Revision, a.Status.Health.Status)
	if op := a.Status.OperationState; op != nil {
		fmt.Fprintf(&b, " operation=%s(%s) %q", op.Phase, op.StartedAt, op.Message)
	}
	for _, c := range a.Status.Conditions {
		fmt.Fprintf(&b, " condition %s: %q", c.Type, c.Message)
	}
	for _, r := range a.Status.Resources {
		fmt.Fprintf(&b, "\n  %s %s/%s sync=%s", r.Kind, r.Namespace, r.Name, r.Status)
		if r.Health != nil {
			fmt.Fprintf(&b, " health=%s %q", r.Health.Status, r.Health.Message)
		}
	}
	return b.String()
}

type resourceRef struct {
	Group     string `json:"group"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
}

type resourceNode struct {
	resourceRef
	ParentRefs []resourceRef `json:"parentRefs"`
	Health     *health       `json:"health"`
}

// applicationTree is the part of Argo CD's ApplicationTree the tests read.
type applicationTree struct {
	Nodes []resourceNode `json:"nodes"`
}

func gunzip(data []byte) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// redisCommand sends one command in RESP and reads the reply: a string, an int, nil or a list.
func redisCommand(conn net.Conn, r *bufio.Reader, args ...string) (any, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	return redisReply(r)
}

func redisReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty Redis reply")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, errors.New(line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = redisReply(r); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected Redis reply %q", line)
}
