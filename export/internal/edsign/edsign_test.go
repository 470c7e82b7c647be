package edsign

import (
	"crypto/ed25519"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

// TestSignerIsEd25519: the streaming signer makes exactly the
// signatures crypto/ed25519.Sign makes, on messages of every length up to
// 4 KiB and larger ones, with many keys, whatever the pieces the message
// is written in; its Verify agrees with ed25519.Verify.
func TestSignerIsEd25519(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	lengths := []int{0, 1, 63, 64, 65, 127, 128, 129, 1000, 4096, 1 << 16, 1<<20 + 17}
	for i := 0; i < 300; i++ {
		lengths = append(lengths, rng.IntN(4097))
	}
	for i, n := range lengths {
		seed := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		priv := ed25519.NewKeyFromSeed(seed[:])
		msg := make([]byte, n)
		for j := range msg {
			msg[j] = byte(rng.Uint32())
		}
		want := ed25519.Sign(priv, msg)
		ss, err := New(priv)
		if err != nil {
			t.Fatal(err)
		}
		writeInPieces(rng, ss.Nonce(), msg)
		if err := ss.Commit(); err != nil {
			t.Fatal(err)
		}
		writeInPieces(rng, ss.Challenge(), msg)
		got, err := ss.Sign()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("message of %d bytes: streamed signature %x, crypto/ed25519 %x", n, got, want)
		}
		if !ss.Verify(got) || !ed25519.Verify(ss.Public(), msg, got) {
			t.Fatalf("message of %d bytes: Verify refuses the signature", n)
		}
		bad := append([]byte(nil), got...)
		bad[rng.IntN(len(bad))] ^= 1 << rng.IntN(8)
		if ss.Verify(bad) != ed25519.Verify(priv.Public().(ed25519.PublicKey), msg, bad) {
			t.Fatalf("message of %d bytes: Verify and ed25519.Verify disagree on a changed signature", n)
		}
	}
}

func writeInPieces(rng *rand.Rand, w interface{ Write([]byte) (int, error) }, msg []byte) {
	for len(msg) > 0 {
		n := min(len(msg), 1+rng.IntN(300))
		w.Write(msg[:n])
		msg = msg[n:]
	}
}
