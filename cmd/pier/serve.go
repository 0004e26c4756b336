package main

import "errors"

// runServe starts a node. It is owned by the serve wiring; this placeholder
// keeps the package compiling until that lands.
func runServe(args []string) error {
	return errors.New("serve: not wired yet")
}
