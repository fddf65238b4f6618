// Every figure of an article opens full-screen: click or tap it, or use the button that
// keyboard users reach with Tab. The dialog shows the whole figure as large as the screen
// allows, in the current palette; on a phone, at twice the screen's width, to scroll and
// pinch-zoom. Escape, the close button or a click on the backdrop returns to the page.
const zoom = (() => {
  // One dialog for the whole visit: instant navigation keeps the body.
  const dialog = Object.assign(document.createElement("dialog"), {
    className: "figure-zoom",
  });
  dialog.setAttribute("aria-label", "Figure, full-screen");
  const close = Object.assign(document.createElement("button"), {
    className: "figure-zoom__close",
    textContent: "Close",
  });
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close();
  });
  return { dialog, close };
})();

document$.subscribe(({ body }) => {
  const { dialog, close } = zoom;
  if (!dialog.isConnected) body.append(dialog);

  const open = (figure) => {
    dialog.replaceChildren(close, ...[...figure.querySelectorAll("img")].map((img) => {
      const copy = img.cloneNode();
      copy.removeAttribute("loading");
      // a lab figure's inline style serves notebooks; here the palette picks the image
      copy.removeAttribute("style");
      return copy;
    }));
    dialog.showModal();
    close.focus();
  };
  for (const figure of body.querySelectorAll("article figure")) {
    if (!figure.querySelector("img")) continue;
    const button = Object.assign(document.createElement("button"), {
      className: "figure-zoom__open",
      title: "Open the figure full-screen",
    });
    button.setAttribute("aria-label", "Open the figure full-screen");
    button.addEventListener("click", () => open(figure));
    for (const img of figure.querySelectorAll("img")) {
      img.addEventListener("click", () => open(figure));
    }
    figure.prepend(button);
  }
});
