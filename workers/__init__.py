"""Ray at the edge: tasks and actors that wrap library functions from `dmo`.

Everything a worker runs is an ordinary function of `dmo` that is tested
without Ray; this package only decides where it runs.
"""
