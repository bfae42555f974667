module example.com/trstctl-conformance

go 1.19

require trstctl.dev/trstctl/clients/go v0.0.0

// In the tree the client module is clients/go; conformance.py copies this folder out of
// the tree and points the replace at the checkout (go mod edit -replace).
replace trstctl.dev/trstctl/clients/go => ../../../clients/go
