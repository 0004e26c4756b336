package bundle

// Conflict is a name a bundle holds with other bytes than the cluster
// binds it to: kept as it is in the cluster, never overwritten.
type Conflict struct {
	Name         string `json:"name"`
	LocalDigest  string `json:"local_digest"`
	BundleDigest string `json:"bundle_digest"`
}

// EntryError is a bundle entry that could not be imported.
type EntryError struct {
	Name  string `json:"name"`
	Error string `json:"error"`
}

// Result says what an import did, entry by entry: the answer of
// POST /api/v1/import, as the node writes it and the client reads it.
type Result struct {
	// Datacenter is the bundle's source.
	Datacenter string `json:"datacenter"`
	// Imported artifacts are bound now, Bytes of them; Skipped ones were
	// bound to the same bytes already.
	Imported int   `json:"imported"`
	Bytes    int64 `json:"bytes"`
	Skipped  int   `json:"skipped"`
	// Conflicts and Deleted (names deleted in the cluster, whose
	// tombstone keeps them) were left as they are.
	Conflicts []Conflict   `json:"conflicts"`
	Deleted   []string     `json:"deleted"`
	Errors    []EntryError `json:"errors"`
	// Complete says the bundle was read to its manifest.
	Complete bool `json:"complete"`
	// Error is what stopped an import before the bundle's end.
	Error string `json:"error,omitempty"`
}
