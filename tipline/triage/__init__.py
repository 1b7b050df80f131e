"""The staff dashboard: scope (who may see which tip), the queue, and the tip page."""
