"""peakready: prove an e-commerce stack ready for its sales peak."""

__version__ = "0.1.0"
