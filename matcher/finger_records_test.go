package matcher

import (
	"fmt"
	"os"

	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// readISOView reads the first view of a finger minutiae record file.
func readISOView(path string) (minutiae.View, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return minutiae.View{}, err
	}
	r, err := minutiae.Parse(b)
	if err != nil {
		return minutiae.View{}, fmt.Errorf("%s: %w", path, err)
	}
	if len(r.Views) == 0 {
		return minutiae.View{}, fmt.Errorf("%s: no views", path)
	}
	return r.Views[0], nil
}
