"""The technical report of a run: RUN_DIR/report/report.md and index.html, with PNG figures beside them.

Everything comes from the run's files (run.json, <stage>/summary.json and log.jsonl, evals/<stage>/*.json,
scaling/*.json), never from logs on a terminal. A section whose files are missing is left out, so the
report of a half-finished run is a shorter report, not an error. The document is built once as a list of
blocks and rendered twice; every string that came from a model or a dataset is escaped in both renderings.

Layout:
  * `runfiles`  -- reading the run folder: `Run`, `load_run`, `read_json`, stage names and labels.
  * `blocks`    -- the document: Heading/Para/Table/Figure/Transcript, the formatting helpers
                   (pct, num, si, flops, duration) and `Doc`, what a section writes into.
  * `registry`  -- the `@section(name, order=...)` decorator and the ordered list of sections.
  * `render`    -- Markdown and HTML renderings of the blocks.
  * `figures`   -- the PNG figures (matplotlib).
  * `build`     -- `build_report`: load the run, write the title, run every section in order, render.
  * `sections/` -- one module per section (model card, training, exams, mmlu, truthfulqa, ...). Each one
                   knows its eval's summary layout and turns it into tables and figures.

Adding a section (a new eval's results in the report) touches nothing above: add one module under
`sections/`, e.g. sections/myeval.py, with

    from tinygpt4.report.blocks import Doc, pct
    from tinygpt4.report.registry import section

    @section("myeval", order=95)          # between follow-up (90) and image QA (100)
    def myeval(doc: Doc) -> None:
        stages = doc.run.stages_with("myeval")
        if not stages:
            return                        # no results: the section is left out
        doc.h(2, "My eval")
        doc.table(["stage", "accuracy"],
                  [[s, pct(doc.run.task(s, "myeval")["summary"].get("acc"))] for s in stages])

Every module in `sections/` is imported when a report is built, so the file is all it takes; `order`
places the section among the others (see each module's `@section` line for the numbers in use).
"""
