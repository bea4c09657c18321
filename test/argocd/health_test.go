// Package argocd checks the Argo CD health check of ServiceGraphs the way Argo CD runs it: the Lua
// script in gopher-lua (the interpreter Argo CD embeds), with the object as the global `obj`,
// against fixtures laid out like Argo CD's built-in checks.
package argocd

import (
	"os"
	"path/filepath"
	"testing"

	lua "github.com/yuin/gopher-lua"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

var checkDir = filepath.Join(testenv.Root(), "config", "argocd", "resource_customizations", "policy.servicegraph.io", "ServiceGraph")

type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type healthTests struct {
	Tests []struct {
		HealthStatus healthStatus `json:"healthStatus"`
		InputPath    string       `json:"inputPath"`
	} `json:"tests"`
}

func TestHealthFixtures(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(checkDir, "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	var cases healthTests
	testenv.ReadYAML(t, filepath.Join(checkDir, "health_test.yaml"), &cases)
	if len(cases.Tests) == 0 {
		t.Fatal("health_test.yaml lists no test")
	}
	fixtures, _ := filepath.Glob(filepath.Join(checkDir, "testdata", "*.yaml"))
	if len(fixtures) != len(cases.Tests) {
		t.Errorf("%d fixtures in testdata but %d tests: every fixture needs a test", len(fixtures), len(cases.Tests))
	}
	for _, tc := range cases.Tests {
		t.Run(tc.InputPath, func(t *testing.T) {
			var obj map[string]any
			testenv.ReadYAML(t, filepath.Join(checkDir, tc.InputPath), &obj)
			got := runHealth(t, string(script), obj)
			if got != tc.HealthStatus {
				t.Errorf("health = %+v, want %+v", got, tc.HealthStatus)
			}
		})
	}
}

// The argocd-cm snippet users apply must carry the same script the fixtures test.
func TestConfigMapCarriesTheTestedScript(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(checkDir, "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	testenv.ReadYAML(t, filepath.Join(testenv.Root(), "config", "argocd", "argocd-cm-patch.yaml"), &cm)
	if got := cm.Data["resource.customizations.health.policy.servicegraph.io_ServiceGraph"]; got != string(script) {
		t.Errorf("argocd-cm-patch.yaml's health script differs from health.lua:\n%s", got)
	}
}

func runHealth(t *testing.T, script string, obj map[string]any) healthStatus {
	t.Helper()
	L := lua.NewState(lua.Options{SkipOpenLibs: false})
	defer L.Close()
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		t.Fatalf("running health.lua: %v", err)
	}
	ret, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("health.lua returned %v, want a table", L.Get(-1))
	}
	return healthStatus{Status: ret.RawGetString("status").String(), Message: ret.RawGetString("message").String()}
}

// toLua converts decoded JSON the way Argo CD does: objects and arrays become tables (arrays
// 1-based), numbers Lua numbers.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, item := range v {
			t.RawSetString(k, toLua(L, item))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, item := range v {
			t.Append(toLua(L, item))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case nil:
		return lua.LNil
	}
	panic("unexpected JSON value")
}
