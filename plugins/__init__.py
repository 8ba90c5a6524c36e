"""ntframe's reference plugins. Each module registers through the ``ntframe`` entry-point group, exactly as
a third-party plugin does; the core never imports them by name."""
