package pdf_test

import (
	"bytes"
	"fmt"
	"os"
	"regexp"

	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/pdf"
)

// A verified JSON bundle renders as a PDF report for people; the same
// bundle always renders to the same bytes, and every page's footer cites
// the bundle hash and the signing key.
func ExampleRenderer_Render() {
	pub, _ := bundle.ReadPublicKeyFile("../bundle/testdata/evidence.pub")
	data, _ := os.ReadFile("../bundle/testdata/evidence.json")
	v, err := bundle.Verify(data, pub)
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := pdf.New()
	if err != nil {
		fmt.Println(err)
		return
	}
	var first, second bytes.Buffer
	if err := r.Render(&first, v.Sealed); err != nil {
		fmt.Println(err)
		return
	}
	r.Render(&second, v.Sealed)

	pages := regexp.MustCompile(`/Type /Page\b[^s]`).FindAll(first.Bytes(), -1)
	fmt.Println("PDF:", bytes.HasPrefix(first.Bytes(), []byte("%PDF-")), "pages:", len(pages))
	fmt.Println("same bytes again:", bytes.Equal(first.Bytes(), second.Bytes()))
	// Each page's footer reads "Bundle SHA-256 <v.Hash>" and "signed,
	// ed25519 key <v.KeyID>" (TestPDFs reads them back with pdftotext).
	fmt.Println("bundle", v.Hash[:16]+"…", "key", v.KeyID)
	// Output:
	// PDF: true pages: 2
	// same bytes again: true
	// bundle cb809fabb6a43b01… key 366dfca11e47c21f
}
