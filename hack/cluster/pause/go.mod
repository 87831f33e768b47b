module portway.local/hack/cluster/pause

go 1.22
