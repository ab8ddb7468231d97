package server

import "github.com/bordermatch/bordermatch/engine"

// newService opens an engine with cfg and serves it.
func newService(cfg engine.Config) (*Service, error) {
	eng, err := engine.New(cfg)
	if err != nil {
		return nil, err
	}
	return NewService(eng), nil
}
