// Package proto_test checks that the generated code checked in under proto/
// is what `make proto` produces from the .proto files today.
package proto_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestGeneratedCodeIsCurrent(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Fatal("protoc not found: run `make deps` (Debian package protobuf-compiler)")
	}
	tmp := t.TempDir()
	for _, plugin := range []string{"google.golang.org/protobuf/cmd/protoc-gen-go", "google.golang.org/grpc/cmd/protoc-gen-go-grpc"} {
		out, err := exec.Command("go", "build", "-o", tmp+"/", plugin).CombinedOutput()
		if err != nil {
			t.Fatalf("building %s: %v\n%s", plugin, err, out)
		}
	}
	gen := filepath.Join(tmp, "gen")
	if err := os.MkdirAll(gen, 0o755); err != nil {
		t.Fatal(err)
	}
	protos, err := filepath.Glob("bordermatch/v1/*.proto")
	if err != nil || len(protos) == 0 {
		t.Fatalf("no .proto files: %v", err)
	}
	args := append([]string{"-I", ".",
		"--plugin=protoc-gen-go=" + filepath.Join(tmp, "protoc-gen-go"), "--go_out=" + gen, "--go_opt=paths=source_relative",
		"--plugin=protoc-gen-go-grpc=" + filepath.Join(tmp, "protoc-gen-go-grpc"), "--go-grpc_out=" + gen, "--go-grpc_opt=paths=source_relative",
	}, protos...)
	if out, err := exec.Command("protoc", args...).CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, out)
	}
	generated, _ := filepath.Glob(filepath.Join(gen, "bordermatch/v1/*.go"))
	if len(generated) == 0 {
		t.Fatal("protoc generated nothing")
	}
	for _, g := range generated {
		rel, _ := filepath.Rel(gen, g)
		want, _ := os.ReadFile(g)
		got, err := os.ReadFile(rel)
		if err != nil {
			t.Errorf("%s is not checked in: run `make proto`", rel)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what protoc generates from the .proto: run `make proto`", rel)
		}
	}
}
