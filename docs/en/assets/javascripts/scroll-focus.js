// A region that scrolls sideways (a wide table, formula or notebook cell) can be scrolled
// from the keyboard only if it can take focus. Runs after KaTeX has typeset the page.
document$.subscribe(({ body }) => {
  const regions = ".md-typeset__scrollwrap, .katex-display, .highlight-ipynb";
  for (const region of body.querySelectorAll(regions)) {
    if (region.scrollWidth > region.clientWidth) region.setAttribute("tabindex", "0");
  }
});
