"""The build machinery: run what each page declares, cache it, and embed the results.

A page declares what it needs with three forms, written directly in its Markdown:

    ![Alt text for the figure](exec:attention.variance_figure)
    /// caption
    What the figure shows.
    ///

    {{ attention.saturation_table }}          <- Markdown (a table, text) returned by a demo
    {{ attention.headline_numbers.var_64 }}   <- one value of a dict returned by a demo

`attention.variance_figure` names the function `variance_figure` in
`snippets/demos/attention.py`. A demo takes no arguments and returns a matplotlib Figure,
a Markdown string or a dict of values. Labs are jupytext percent scripts in
`docs/<lang>/labs/`, executed into notebooks that mkdocs-jupyter renders.

The parts, in the order a build uses them:

- `plan`: the items a site declares, what each depends on, and its cache key;
- `run`: executes stale items in child processes, with time limits, in two phases
  (untimed demos beside the labs, then timed demos alone);
- `worker` (`python -m executed.worker`): runs demos in a fresh process, isolated
  from each other, and checks what they return;
- `lab` (`python -m executed.lab`): runs one lab into a notebook;
- `checks`: the pure checks on results and pages (NaN in figures, leftover declarations);
- `render`: puts results into a page's Markdown and adds the timing box;
- `exercises`: a chapter's exercises checked against the code exercises that
  `snippets/exercises/` declares (ids, solutions, tests, the checker's command);
- `notebook`: each chapter as a notebook generated from its page;
- `editions`: what a translation (docs/zh) must share with its English page, checked
  first in a translation's build;
- `words`: the words the build writes itself, in each edition's language;
- `katex`: each page's math typeset by KaTeX (run with Node) at build time;
- `report`: the build report page;
- `vendor`: KaTeX's stylesheet and fonts, served by the site itself;
- `plugin`: the MkDocs plugin (`executed` in mkdocs.yml) that wires the parts together;
- `scaffold`: `nox -s new_chapter`.

`python -m executed check docs/en/chapters/<page>.md` executes one page's demos without
building the site.
"""
