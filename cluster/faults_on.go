//go:build faults

package cluster

import "os"

// Planted faults, chosen with PIER_FAULT. They break invariants on purpose:
// drop-shard acknowledges a push with one shard silently missing, and
// skip-checksum serves shard blocks without verifying them.
var plantedFault = os.Getenv("PIER_FAULT")

func (n *Node) fault(name string) bool { return plantedFault == name }
