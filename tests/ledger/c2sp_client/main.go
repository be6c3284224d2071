// An independent C2SP client for the tests: checks a taxgate log as served under /log with the Go
// checksum database's transparency-log code (golang.org/x/mod/sumdb/tlog and sumdb/note, from
// Debian's golang-golang-x-mod-dev), none of taxgate's own. Only the fetching below is ours: the
// C2SP tile paths (tile/<L>/<N>[.p/<W>], tile/entries/<N>) differ from sumdb's.
//
//	c2sp-client BASE_URL VERIFIER_KEY TOKEN [OLD_CHECKPOINT_FILE] INDEX...
//
// It verifies the checkpoint's signature, every tile it reads against the checkpoint's root, an
// inclusion proof of each INDEX (its entry read from the entry bundles, with the auditor's token),
// and, given an older checkpoint, a consistency proof from it. Prints "ok ..." lines; exits 1 on
// the first failure.
package main

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var base, token string

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", args...)
	os.Exit(1)
}

func get(path string, auth bool) []byte {
	req, _ := http.NewRequest("GET", base+path, nil)
	if auth {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fail("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		fail("GET %s: %d %s", path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return body
}

// The C2SP encoding of a tile index: zero-padded 3-digit elements, all but the last with an x.
func index(n int64) string {
	s := fmt.Sprintf("%03d", n)
	for len(s)%3 != 0 {
		s = "0" + s
	}
	var parts []string
	for i := 0; i < len(s); i += 3 {
		parts = append(parts, s[i:i+3])
	}
	for i := 0; i < len(parts)-1; i++ {
		parts[i] = "x" + parts[i]
	}
	return strings.Join(parts, "/")
}

func tilePath(prefix string, t tlog.Tile) string {
	p := prefix + index(t.N)
	if t.W < 1<<uint(t.H) {
		p += fmt.Sprintf(".p/%d", t.W)
	}
	return p
}

type reader struct{}

func (reader) Height() int { return 8 }

func (reader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		out[i] = get(tilePath(fmt.Sprintf("/tile/%d/", t.L), t), false)
	}
	return out, nil
}

func (reader) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

func tree(text string, verifier note.Verifier) (string, tlog.Tree) {
	n, err := note.Open([]byte(text), note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint signature: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size: %v", err)
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		fail("checkpoint root hash")
	}
	var h tlog.Hash
	copy(h[:], raw)
	return lines[0], tlog.Tree{N: size, Hash: h}
}

func entry(i int64, size int64) []byte {
	n := i / 256
	w := int64(256)
	if (n+1)*256 > size {
		w = size - n*256
	}
	bundle := get(tilePath("/tile/entries/", tlog.Tile{H: 8, L: -1, N: n, W: int(w)}), true)
	for k := int64(0); len(bundle) >= 2; k++ {
		length := int(binary.BigEndian.Uint16(bundle))
		if len(bundle) < 2+length {
			fail("entry bundle %d is cut short", n)
		}
		if k == i%256 {
			return bundle[2 : 2+length]
		}
		bundle = bundle[2+length:]
	}
	fail("entry %d not in its bundle", i)
	return nil
}

func main() {
	if len(os.Args) < 4 {
		fail("usage: c2sp-client BASE_URL VERIFIER_KEY TOKEN [OLD_CHECKPOINT] INDEX...")
	}
	base, token = strings.TrimRight(os.Args[1], "/"), os.Args[3]
	verifier, err := note.NewVerifier(os.Args[2])
	if err != nil {
		fail("verifier key: %v", err)
	}
	origin, t := tree(string(get("/checkpoint", false)), verifier)
	fmt.Printf("ok checkpoint %s size %d\n", origin, t.N)
	hashes := tlog.TileHashReader(t, reader{})
	args := os.Args[4:]
	if len(args) > 0 {
		if old, err := os.ReadFile(args[0]); err == nil {
			_, o := tree(string(old), verifier)
			proof, err := tlog.ProveTree(t.N, o.N, hashes)
			if err != nil {
				fail("consistency proof from %d: %v", o.N, err)
			}
			if err := tlog.CheckTree(proof, t.N, t.Hash, o.N, o.Hash); err != nil {
				fail("consistency from %d to %d: %v", o.N, t.N, err)
			}
			fmt.Printf("ok consistent %d -> %d\n", o.N, t.N)
			args = args[1:]
		}
	}
	for _, a := range args {
		i, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			fail("index %q", a)
		}
		proof, err := tlog.ProveRecord(t.N, i, hashes)
		if err != nil {
			fail("inclusion proof of %d: %v", i, err)
		}
		if err := tlog.CheckRecord(proof, t.N, t.Hash, i, tlog.RecordHash(entry(i, t.N))); err != nil {
			fail("inclusion of %d: %v", i, err)
		}
		fmt.Printf("ok entry %d included\n", i)
	}
}
