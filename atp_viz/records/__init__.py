"""What runs give back, as typed records with no torch: results and the pruned model's continuations."""
