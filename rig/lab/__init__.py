"""What a lab is and what one run holds: the inventory (boards.yaml), boards, locks, set-up."""
