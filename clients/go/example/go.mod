module example.com/trstctl-example

go 1.19

require trstctl.dev/trstctl/clients/go v0.0.0

// In the tree the client module is the folder above; a copy elsewhere points this at the
// trstctl checkout (go mod edit -replace trstctl.dev/trstctl/clients/go=/path/clients/go).
replace trstctl.dev/trstctl/clients/go => ../
