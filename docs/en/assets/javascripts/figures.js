// Every figure of an article opens full-screen: click or tap it, or use the button that
// keyboard users reach with Tab. The dialog shows the figure at its natural size (larger
// than the column for wide figures), in the current palette, scrollable and pinch-zoomable
// on a phone. Escape, the close button or a click on the backdrop returns to the page.
document$.subscribe(({ body }) => {
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
  body.append(dialog);

  const open = (figure) => {
    dialog.replaceChildren(close, ...[...figure.querySelectorAll("img")].map((img) => {
      const copy = img.cloneNode();
      copy.removeAttribute("loading");
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
