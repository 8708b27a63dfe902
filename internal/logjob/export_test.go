package logjob

// FileDest is fileDest for the external tests (proxyrate_test.go).
var FileDest = fileDest
