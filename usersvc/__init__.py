"""usersvc: the users microservice."""
