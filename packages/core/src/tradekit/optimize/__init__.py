"""Parameter search and walk-forward analysis over full paper replays, on Optuna.

``tradekit optimize`` searches a strategy's parameters and its ``StrategyScalingPolicy``
fields (``tradekit.optimize.space``) for the best run statistics
(``tradekit.optimize.objective``); every trial is one whole paper replay through
``run_paper_replay``, the entry point of ``tradekit run`` (``tradekit.optimize.problem``).
Trials are shared out through an Optuna study, in memory, in a SQLite file or in
PostgreSQL for many machines (``tradekit.optimize.study``, ``tradekit.optimize.worker``);
``tradekit.optimize.walkforward`` optimises rolling or anchored in-sample windows and
scores the best parameters on the out-of-sample windows that follow.

Optuna is the optional extra ``tradekit[optimize]``.
"""
