// Package pack stores small shards as records appended to a few large pack
// files, because creating, fsyncing and dir-fsyncing one file per shard
// costs more CPU than the shard is worth. Appends are not synced: Sync makes
// everything appended before it durable, and concurrent callers share its
// fdatasyncs.
//
// # Files
//
// A store is a directory of files named pack-00000001.dat, pack-00000002.dat,
// … . The highest numbered one is active and receives appends; once it
// reaches Options.PackSize a new one is started and the old one is sealed:
// never appended to again, only read, and rewritten by Compact when enough of
// it is dead.
//
// # Record
//
// A pack is a sequence of records, each a 56-byte header and then the data.
// Integers are little-endian.
//
//	offset  size  field
//	     0     4  magic "pkr\x01" (the last byte is the format version)
//	     4     1  kind: 1 put, 2 tombstone, 3 seal
//	     5     1  shard index (Key.Index)
//	     6     2  reserved, zero
//	     8    32  object ID (Key.ID)
//	    40     4  data length; 0 for tombstones and seals
//	    44     8  write time, Unix nanoseconds (kept when compaction copies)
//	    52     4  CRC32C (Castagnoli) of bytes 0..51 and the data
//	    56     n  data
//
// A record says where nothing is: it can be copied byte for byte to another
// pack and stays valid, which is how Compact moves live records.
//
// A tombstone records a Delete. A seal is the last record of a sealed pack
// and is written only after the pack was fdatasynced: a pack that ends in a
// valid seal holds no torn writes. A seal's object ID holds its own offset
// (bytes 0..7) and the pack number (bytes 8..11), so the tail of some data
// that happens to look like a seal is not taken for one.
//
// # Recovery
//
// Open reads every pack in order, in large sequential reads, and rebuilds
// the index; a later record of a key overrides an earlier one. A pack that
// ends in a seal was synced whole, so only its headers are checked, which
// keeps Open fast; the first header that makes no sense ends the indexing of
// that pack (Stats.Damaged), and the records after it are lost to this node
// until the scrubber rebuilds them. A record whose data rots is found by
// Get, which checks the CRC on every read. Any other pack, the active one or
// one sealed just before a crash, may end in writes the crash tore: there
// every CRC is checked and the pack is cut back before the first bad record
// (Stats.TornTails). Checking only headers there would not do: a torn record
// with an intact header would be indexed, and the replayed Put meant to
// rewrite it would find it present and do nothing.
//
// Open makes every pack it recovered durable before it returns, so Sync
// never has to cover records written by an earlier process.
package pack
