// Typeset the math that pymdownx.arithmatex marks, on every page Material shows (also after
// instant navigation). KaTeX and its fonts are served from this site.
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true },
    ],
    throwOnError: true,
  });
});
