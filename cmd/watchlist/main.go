// Command watchlist is the border officer's client of matchd: search by
// photo, add, show, remove, list and import subjects. See package
// github.com/bordermatch/bordermatch/watchlist for the commands and exit codes.
package main

import (
	"os"

	"github.com/bordermatch/bordermatch/watchlist"
)

func main() {
	os.Exit(watchlist.Main(os.Args[1:], os.Stdout, os.Stderr))
}
