// Command matchd serves the Bordermatch matching engine over gRPC; see
// server.Main for its flags, environment variables and subcommands
// ("matchd --help", "matchd certs --help", "matchd rotate-key --help").
package main

import (
	"os"

	"github.com/bordermatch/bordermatch/server"
)

func main() {
	os.Exit(server.Main(os.Args[1:], os.Stdout, os.Stderr))
}
