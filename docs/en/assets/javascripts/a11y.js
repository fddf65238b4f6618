// Two repairs for keyboard and screen-reader users, on every page Material shows (also after
// instant navigation); tests/test_browser.py checks them with axe-core. Runs after KaTeX.
document$.subscribe(({ body }) => {
  // A region that scrolls sideways (a wide table, formula or notebook cell) can be scrolled
  // from the keyboard only if it can take focus.
  const regions = ".md-typeset__scrollwrap, .katex-display, .highlight-ipynb";
  for (const region of body.querySelectorAll(regions)) {
    if (region.scrollWidth > region.clientWidth) region.setAttribute("tabindex", "0");
  }
  // A code annotation's marker shows its number through CSS only: give the link a name.
  // Material creates the markers when it mounts the code block, hence the next frame.
  requestAnimationFrame(() => {
    for (const marker of body.querySelectorAll("a.md-annotation__index")) {
      const id = marker.querySelector("[data-md-annotation-id]");
      if (id) marker.setAttribute("aria-label", `Annotation ${id.dataset.mdAnnotationId}`);
    }
  });
});
