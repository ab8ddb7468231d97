package an2k_test

import (
	"fmt"
	"os"
	"time"

	"github.com/bordermatch/bordermatch/templates/an2k"
)

// Reading a tenprint transaction: its header, then each record's image.
func ExampleParse() {
	b, err := os.ReadFile("testdata/valid1.1.an2")
	if err != nil {
		panic(err)
	}
	tr, err := an2k.Parse(b)
	if err != nil {
		panic(err)
	}
	fmt.Println("version", tr.Version(), "TOT", tr.TOT())
	for i, r := range tr.Records {
		im, err := tr.Image(i)
		if err != nil {
			fmt.Printf("Type-%d\n", r.Type)
			continue
		}
		img, err := im.Decode()
		fmt.Printf("Type-%d: %s %d×%d %d ppi fingers %v, decoded %v %v\n",
			r.Type, im.Compression, im.Width, im.Height, im.PPI, im.Positions, img.Bounds().Size(), err)
	}
	// Output:
	// version 0201 TOT CAR
	// Type-1
	// Type-2
	// Type-4: wsq 512×512 500 ppi fingers [10], decoded (512,512) <nil>
}

// Writing a Prüm-style tenprint search with an INT-I Type-2 and reading
// the subject's attributes back by name.
func ExampleNewTransaction() {
	p, err := an2k.LoadProfile("int-i")
	if err != nil {
		panic(err)
	}
	tr, err := an2k.NewTransaction(p, "CPS", an2k.Header{
		Originator: "FR/BM", Destination: "DE/BKA", TCN: "BM-0001",
		Time: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC),
	})
	if err != nil {
		panic(err)
	}
	t2, err := p.Type2(map[string]string{"reference": "FR-2026-0001"})
	if err != nil {
		panic(err)
	}
	tr.Add(t2)
	b, err := tr.Encode()
	if err != nil {
		panic(err)
	}
	back, err := an2k.Parse(b)
	if err != nil {
		panic(err)
	}
	dom, ver := back.Domain()
	fmt.Println(len(b), "bytes;", dom, ver, back.TOT(), p.Subject(&back.Records[1]))
	// Output:
	// 211 bytes; INT-I 4.22 CPS map[reference:FR-2026-0001 system:0422]
}
