"""Run: one experiment end to end, and many of them as a sweep.

`runner.run_experiment(spec, root)` trains one run into a results root (staging, lock, resume,
promotion); `sweep.plan` finds what a folder of configs asks for and what is already done, and
`sweep.run_sweep(todo, executor)` runs the rest through an executor (in process, worker
processes, or Ray). Modules: `runner`, `sweep`, `executors`, `ray_backend`, `provenance` (what
a run's numbers came from), `logs` (where regexp's lines go).
"""
