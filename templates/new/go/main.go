// __NAME__: a Switchboard tool plugin in Go, as a WASI command.
//
// ./build.sh builds it with GOOS=wasip1 GOARCH=wasm into dist/__NAME__.wasm.
// Switchboard runs it once per call: the call arrives as JSON on stdin, the
// result goes out as JSON on stdout, and a failure is a message on stderr
// with a non-zero exit status. A command cannot list its tools, so the
// manifest (__NAME__.toml) declares them, with their JSON Schemas.
//
// Other lines on stderr go to Switchboard's log (and show in `switchboard
// call`'s output). The manifest's [config] values arrive as environment
// variables (os.Getenv). `go test` runs the unit tests natively.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// request is what Switchboard writes on stdin.
type request struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
	Call      struct {
		ID             string `json:"id"`
		ToolCallID     string `json:"tool_call_id"`
		CustomerNumber string `json:"customer_number"` // "" on web calls
		DeadlineMS     int64  `json:"deadline_ms"`
	} `json:"call"`
}

// arguments of __NAME__; Switchboard has checked them against the schema.
type arguments struct {
	Name string `json:"name"`
}

// greeting is what __NAME__ answers.
type greeting struct {
	Message string `json:"message"`
}

// run answers one call, or returns the message the LLM reads.
func run(req request) (any, error) {
	switch req.Name {
	case "__NAME__":
		var args arguments
		if err := json.Unmarshal(req.Arguments, &args); err != nil {
			return nil, fmt.Errorf("invalid arguments: %v", err)
		}
		if strings.TrimSpace(args.Name) == "" {
			return nil, errors.New("`name` must not be empty")
		}
		fmt.Fprintf(os.Stderr, "greeting %s (call %s)\n", args.Name, req.Call.ID)
		return greeting{Message: "Hello, " + args.Name + "!"}, nil
	default:
		return nil, fmt.Errorf("unknown tool: %s", req.Name)
	}
}

func main() {
	input, err := io.ReadAll(os.Stdin)
	var req request
	if err == nil {
		err = json.Unmarshal(input, &req)
	}
	var result any
	if err == nil {
		result, err = run(req)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err) // the message the LLM sees
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(result); err != nil {
		os.Exit(1)
	}
}
