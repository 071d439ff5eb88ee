module github.com/dtc-project/dtc

go 1.26
