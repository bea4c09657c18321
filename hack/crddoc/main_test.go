package main

import "testing"

func TestRewrite(t *testing.T) {
	in := `---
spec:
  description: one line stays
  properties:
    a:
      description: |-
        first line of a paragraph
        goes on here.

        A second paragraph:
        - an item
        - another item
          continued
      type: string
    b:
    - description: |-
        in a list
        item
`
	want := `---
spec:
  description: one line stays
  properties:
    a:
      description: |-
        first line of a paragraph goes on here.

        A second paragraph:
        - an item
        - another item
          continued
      type: string
    b:
    - description: |-
        in a list item
`
	if got := Rewrite(in); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
