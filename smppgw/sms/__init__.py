"""What an SMS is made of: text encodings, addresses, delivery receipts."""
