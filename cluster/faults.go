//go:build !faults

package cluster

// Planted faults exist only in builds with the faults tag, which the chaos
// suite uses to prove its checkers catch real violations (objects names
// them).
func (n *Node) fault(string) bool { return false }
