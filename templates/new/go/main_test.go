package main

import (
	"encoding/json"
	"testing"
)

func call(t *testing.T, name, args string) (any, error) {
	t.Helper()
	var req request
	req.Name = name
	req.Arguments = json.RawMessage(args)
	return run(req)
}

func TestGreetsByName(t *testing.T) {
	result, err := call(t, "__NAME__", `{"name": "Ada"}`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(result)
	if string(got) != `{"message":"Hello, Ada!"}` {
		t.Fatalf("got %s", got)
	}
}

func TestRefusesAnEmptyName(t *testing.T) {
	if _, err := call(t, "__NAME__", `{"name": " "}`); err == nil {
		t.Fatal("an empty name was accepted")
	}
}
