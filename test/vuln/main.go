// Command vuln parses a language tag with golang.org/x/text v0.3.6, whose language.Parse has
// GO-2021-0113 (an out-of-bounds read, fixed in v0.3.7): govulncheck must report it as called.
package main

import (
	"fmt"
	"os"

	"golang.org/x/text/language"
)

func main() {
	for _, arg := range os.Args[1:] {
		tag, err := language.Parse(arg)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(tag)
	}
}
