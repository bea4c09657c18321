// Checks the manager image make release builds (dist/image), with the standard library only: the
// reader shares no code with hack/tools/image, which wrote it.
module servicegraph.io/test/image

go 1.26.0
