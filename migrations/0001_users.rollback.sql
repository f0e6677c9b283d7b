DROP TABLE linked_accounts;
DROP TABLE users;
