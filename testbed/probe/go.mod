module ensemble.dev/testbed/probe

go 1.24
