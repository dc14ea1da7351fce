"""The randomized fault x kill campaign over the emulators (``nox -s chaos``)."""
