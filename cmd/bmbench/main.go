// Command bmbench measures Bordermatch's accuracy and speed on labeled
// data: bmbench verify|identify|speed|calibrate|compare. See package
// github.com/bordermatch/bordermatch/benchmarks.
package main

import (
	"os"

	"github.com/bordermatch/bordermatch/benchmarks"
)

func main() {
	os.Exit(benchmarks.Main(os.Args[1:], os.Stdout, os.Stderr))
}
