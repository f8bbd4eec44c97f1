//! UserService, by concern: invitations, the lifecycle, editing and the acting rules, listing.
mod editing;
mod invitations;
mod lifecycle;
mod listing;
