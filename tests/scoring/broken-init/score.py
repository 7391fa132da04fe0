"""A scoring script whose init() fails, as a missing dependency makes it fail."""


def init():
    import module_that_is_not_installed  # noqa: F401


def run(raw_data):
    return raw_data
