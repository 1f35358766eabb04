module imgjudge.example/imgjudge

go 1.19
