// Regenerates ../go_printers.json and ../go_tabwriter.json with kubectl's own printing libraries
// (sigs.k8s.io/yaml over go-yaml v2, encoding/json of an unstructured object, and
// github.com/liggitt/tabwriter set up as cli-runtime's printers.GetNewTabWriter).
//
//	mkdir /tmp/goref && cp main.go /tmp/goref/ && cd /tmp/goref
//	cp $REPO/testbed/go/k8s/go.mod $REPO/testbed/go/k8s/go.sum . && sed -i 's#^module .*#module goref#' go.mod
//	GOFLAGS=-mod=mod go build -o goref .
//	python3 $REPO/printers/src/go/testdata/gen/inputs.py yaml | ./goref yaml > $REPO/printers/src/go/testdata/go_printers.json
//	python3 $REPO/printers/src/go/testdata/gen/inputs.py tab | ./goref tab > $REPO/printers/src/go/testdata/go_tabwriter.json
//
// The tab fixtures keep Go's output in the "yaml" field.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"github.com/liggitt/tabwriter"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

type Case struct {
	Input json.RawMessage `json:"input"`
	YAML  string          `json:"yaml"`
	JSON  string          `json:"json"`
}

func main() {
	mode := os.Args[1]
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	var out []Case
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		switch mode {
		case "yaml":
			obj := &unstructured.Unstructured{}
			var m map[string]interface{}
			if err := json.Unmarshal(line, &m); err != nil {
				panic(err)
			}
			// decode like kubectl does (ints as int64)
			if err := obj.UnmarshalJSON(line); err != nil {
				panic(err)
			}
			y, err := yaml.Marshal(obj.Object)
			if err != nil {
				fmt.Fprintln(os.Stderr, "skip:", string(line), err)
				continue
			}
			j, err := json.MarshalIndent(obj, "", "    ")
			if err != nil {
				panic(err)
			}
			out = append(out, Case{Input: append([]byte{}, line...), YAML: string(y), JSON: string(j) + "\n"})
		case "tab":
			var s string
			json.Unmarshal(line, &s)
			var b bytes.Buffer
			w := tabwriter.NewWriter(&b, 6, 4, 3, ' ', tabwriter.RememberWidths)
			fmt.Fprint(w, s)
			w.Flush()
			out = append(out, Case{Input: append([]byte{}, line...), YAML: b.String()})
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	enc.Encode(out)
}
