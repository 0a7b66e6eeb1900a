module feedcrawl.local/testbin/podcheck

go 1.26.0
