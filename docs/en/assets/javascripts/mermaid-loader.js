// Mermaid is large, and only a few pages draw diagrams. Material uses a global `mermaid`
// when one exists (and fetches one from a CDN when none does), calling initialize() once
// and render() per diagram. This stand-in records the configuration and loads the real
// Mermaid, served by this site, the first time a page actually renders a diagram.
(() => {
  const src = new URL("../vendor/mermaid/mermaid.min.js", document.currentScript.src).href;
  let config = {};
  let ready = null;
  const load = () =>
    (ready ??= new Promise((resolve, reject) => {
      const script = Object.assign(document.createElement("script"), { src });
      script.onload = () => {
        window.mermaid.initialize(config);
        resolve(window.mermaid);
      };
      script.onerror = () => reject(new Error(`could not load ${src}`));
      document.head.append(script);
    }));
  window.mermaid = {
    initialize: (options) => {
      config = options;
    },
    render: async (id, text) => (await load()).render(id, text),
  };
})();
