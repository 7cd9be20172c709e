"""One module per report section; each registers itself with `@section(name, order=...)` from
`tinygpt4.report.registry`, which imports every module here. See the `tinygpt4.report` docstring."""
