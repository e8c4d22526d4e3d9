#[promiscuous::ephemeral(to = "crowdtap/page_view")]
pub enum PageView {
    Home,
    About,
}

fn main() {}
