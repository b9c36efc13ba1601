"""Global steps (those that look at every row) as Ray shuffles, each equal to its local twin.

``global_ops`` holds one function per global step taking ``runner="local"|"ray"``: "local" calls
the single-process implementation where it lives, "ray" runs hash-partitioned map/reduce tasks
(``shuffle``) so no process holds more than a partition. Tests assert both give the same table.
"""
