#[promiscuous::ephemeral(page, user_id, id = "uuid")]
pub struct PageView {
    pub uuid: String,
    pub page: String,
    pub user_id: i32,
}

fn main() {}
